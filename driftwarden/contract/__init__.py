"""What the stream, the retrain worker, the SDK and the tools share: the Kafka event contract, the Redis storage
contract, the settings and the errors. A leaf: it imports nothing of the project but ``detectors`` types."""

"""driftwarden's drift engine: histograms, drift statistics, quality rules and River wrappers.

Pure: numpy, scipy and river only. The stream and the retrain worker use ``detectors.monitor``.
"""

"""Developer tools: the local stack, the demo, its model and traffic, the live and status views."""

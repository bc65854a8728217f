"""streams: the worker — store the readings of both lanes, score NEWS2, raise alerts."""

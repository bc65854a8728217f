"""streams: the Faust app — normalise readings, persist observations, score NEWS2."""

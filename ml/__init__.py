"""KeyWeb's model side: audio to key probabilities. Pure Python + torch; never imports Django."""

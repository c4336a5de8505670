"""fastText document classifiers (quality score, category): the text features they read, training, and
held-out evaluation, shared by the stages, the training commands and the scripts that build the
packaged models."""

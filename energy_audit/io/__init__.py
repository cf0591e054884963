"""Input and output: readers of the files people send, writers of the files we publish."""

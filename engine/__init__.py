"""The loops the five scripts share: training (train.py), evaluation and testing (evaluate.py),
checkpoint loading (checkpoint.py) and the command lines built from a DatasetSpec (cli.py)."""

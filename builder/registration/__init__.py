"""Registration by identity: the in-cluster service (service.py, standard library only)
and what installs it."""

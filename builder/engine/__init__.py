"""The Docker engine: docker_engine.py is the one module that imports docker-py, and
containers.py the one that imports testcontainers (the check's containers and networks);
lab_containers.py holds the engine calls that only the lab needs.

It may import builder.core only.
"""

"""The mesh-expansion walk-through, automated on a throwaway cluster with nodes (`check
--e2e`): steps (command lines and manifests), kind (its parts built here), setup and run
(the steps as functions of one Walk), observe (what it reads) and walk (the run's state,
its failure line and its cleanup).
"""

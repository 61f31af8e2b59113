"""GPUs: the node topology model, health verdicts, placement and memory risk.

- ``topology``: one node's devices, links and nominal pair bandwidth
- ``topology_score``: the measures of a GPU set that placement ranks by
- ``selection``: choosing k GPUs on one node (bottleneck-threshold search)
- ``placement``: a node and a GPU set for every replica of a k-GPU request
- ``replica_placement``: an InferenceService's per-replica placement and its enforcement
- ``placement_report``: what that decision reports: status fields, conditions, Events
- ``holders``: who holds which GPU (claims and recorded placements, every namespace)
- ``fragmentation``: how much of a pool's free GPU capacity is stranded
- ``health``: health verdicts from one GPU's sampled counters
- ``inventory``: a node agent's published inventory read into planning's shapes
- ``nccl``: the NCCL environment of multi-GPU replicas
- ``oom``: GPU-memory out-of-memory risk from a fitted trend
"""

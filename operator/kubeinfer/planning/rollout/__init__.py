"""Rollouts: moving a candidate model version to stable or back.

- ``machine``: the state machine of one rollout pass
- ``steps``: what each step asks for (weight, candidate pods, pause) and the plan shown
- ``timing``: when the next analysis is due and when to reconcile again
- ``state``: the shapes a pass works on (versions, remembered state, decision)
- ``status``: the round trip of the state through ``status.rollout``
- ``analysis``: the PromQL each metric runs and the checks that judge it
- ``gpus``: where a candidate's pods get their GPUs, and whether the pool can surge
- ``replica_moves``: zero-spare rollouts, one replica at a time
- ``version_placement``: which GPU sets each version is pinned to across a rollout
- ``retirement``: blue-green's delayed scale-down and the switch back
- ``in_place``: which running server loads which version (``rollout.reload: inPlace``)
"""

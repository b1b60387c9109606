"""kscout agents: proposers that turn a strategy node into candidate kernel source.

The offline proposer instantiates parametric templates (agents/templates); model-backed
proposers (litellm + DSPy) plug in behind the same Proposer protocol.
"""

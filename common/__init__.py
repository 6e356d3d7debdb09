"""exil's shared machinery: the active loop, the run journal, pool-aware data, oracles,
query strategies, explainers, backbones and logging. Never imports a method package."""

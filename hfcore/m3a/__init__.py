"""M3A (Sawhney et al., ACL 2021): volatility and price movement from M&A conference calls.

``data`` loads the public release in either layout, ``models`` holds M3ANet, its baselines and
M3ANet + HyperFuse, ``metrics`` the task metrics, and ``experiment.run_m3a`` one training run.
"""

"""The cross-domain leaderboard: every adapter on every domain's held-out split (assets.py)."""

"""The shield role's own parts: overlay-only ingress (ingress.py), origin pools and their health
(origin.py). What both roles use to reach other nodes is :mod:`overlay`'s."""

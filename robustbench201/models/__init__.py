"""NB201 networks: the discrete cell network with official state-dict keys, counting, and weight loading."""

from .network import NB201Network, Normalize, create_model

__all__ = ["NB201Network", "Normalize", "create_model"]

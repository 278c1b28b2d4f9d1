"""derive: derive the formulas of neural networks with SymPy, verify them, render them."""

__version__ = "0.1.0"

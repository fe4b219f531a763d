"""Stand-in for the ``google`` namespace of a Colab runtime (tests only)."""

"""genas: neural architecture search with flatness-based scoring (GeNAS, IJCAI 2023)."""
__version__ = "0.1.0"

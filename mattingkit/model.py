"""Placeholder: the lead is writing this module."""

"""Caruana's synthetic multi-task experiments (``polytask experiment NAME``); one module each."""

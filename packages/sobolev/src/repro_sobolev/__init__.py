"""Sobolev Training for Neural Networks."""

"""Tests of the synthetic scenes."""

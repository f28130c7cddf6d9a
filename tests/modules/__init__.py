"""Tests of the event modules, one folder each."""

"""
Attacks that fix or extend ART's for speech recognizers.
"""

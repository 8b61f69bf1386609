"""
Input channels that are neither defences nor attacks, as ART preprocessors (as ART keeps ``art.preprocessing``): rooms
that a waveform is played in, for over-the-air attacks.
"""

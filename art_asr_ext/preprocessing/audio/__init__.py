"""
Audio channels as ART PyTorch preprocessors (as ART keeps ``art.preprocessing.audio``): room impulse responses.

| Paper link: https://arxiv.org/abs/1903.10346
"""

from art_asr_ext.preprocessing.audio.room_simulation import (
    Room,
    RoomSet,
    RoomSimulationPyTorch,
    convolve_room,
    draw_rooms,
    room_impulse_response,
)

__all__ = ["Room", "RoomSet", "RoomSimulationPyTorch", "convolve_room", "draw_rooms", "room_impulse_response"]

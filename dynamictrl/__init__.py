"""DynamiCtrl: human image animation with a CogVideoX-style MM-DiT and PadaLN pose control."""

__version__ = "0.1.0"

"""The notebook layer: magics, widgets and drawings on top of the engine."""

"""Pure, typed, device-agnostic tensor functions (no parameters, no module state)."""

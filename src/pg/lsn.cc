// Implemented by the pg layer.

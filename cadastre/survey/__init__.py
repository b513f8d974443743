"""Survey layers: vector and raster."""

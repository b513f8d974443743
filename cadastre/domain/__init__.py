"""Pure domain logic: coordinate reference systems, geometry intake, licence rules."""

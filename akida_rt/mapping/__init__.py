"""The mapper: device descriptions, NP memory rules, layer placement and stored mappings.
May import: format, errors."""

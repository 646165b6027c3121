//! (placeholder: filled by the bus work)

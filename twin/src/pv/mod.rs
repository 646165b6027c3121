//! (placeholder: filled by the pv work)

//! (placeholder: filled by the grid work)

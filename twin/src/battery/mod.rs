//! (placeholder: filled by the battery work)

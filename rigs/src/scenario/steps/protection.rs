//! Steps for protection: sensors forced to a reading, faults and reactions.

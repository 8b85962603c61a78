"""The pipeline document as a whole: how two versions of it differ (docdiff)."""

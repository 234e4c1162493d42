//! Auth documents as JSONB with buffer revival (issue 4).

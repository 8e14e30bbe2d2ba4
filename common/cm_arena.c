typedef int cm_placeholder_arena;

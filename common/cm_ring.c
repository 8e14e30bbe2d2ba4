/* placeholder */
typedef int cm_placeholder_cm_ring;

/* placeholder */
typedef int ix_fragment_placeholder;

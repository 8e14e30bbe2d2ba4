/* placeholder */
typedef int ix_index_placeholder;

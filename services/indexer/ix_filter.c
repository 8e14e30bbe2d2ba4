/* placeholder */
typedef int ix_filter_placeholder;

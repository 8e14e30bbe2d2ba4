/* placeholder */
typedef int ix_record_placeholder;

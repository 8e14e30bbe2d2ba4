/* placeholder */
typedef int lg_store_placeholder;

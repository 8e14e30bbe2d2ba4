/* placeholder */
typedef int lg_genesis_placeholder;

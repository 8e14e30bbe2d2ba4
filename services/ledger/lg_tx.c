/* placeholder */
typedef int lg_tx_placeholder;

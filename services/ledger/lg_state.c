/* placeholder */
typedef int lg_state_placeholder;

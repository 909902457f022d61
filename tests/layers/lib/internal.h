/* the library-wide helpers, util's */

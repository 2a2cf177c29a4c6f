# The StandardScaler -> PolynomialFeatures -> LinearRegression pipeline on raw pointers, shared
# by the resampling, guarded-prediction and cross-validation kernels.

from advisor_core.models._buffers cimport Buffers


cdef struct Pipe:
    # The problem.
    Py_ssize_t n_features
    Py_ssize_t n_mono          # monomials of the expansion (no bias)
    Py_ssize_t degree          # width of a monomial table row
    const int* mono            # n_mono x degree feature indices, -1 padded
    Py_ssize_t ncols_tol       # column count that sets the rank cut-off (sklearn's design width)
    # Work buffers, sized by pipe_alloc for up to its max_rows rows.
    double* design             # the centred design of the kept monomials
    double* target             # the centred target
    double* scaled             # one row's scaled active features
    double* monomials          # one row's monomials
    double* column_mean        # means of the design's kept columns
    double* solution           # the solver's coefficients of the kept columns
    double* work
    Py_ssize_t* pivots
    Py_ssize_t* kept           # kept column -> monomial
    Py_ssize_t n_kept          # kept monomials for kept_for (-1: none yet)
    bint* active               # features that are not constant in the fit's rows
    bint* kept_for             # the active flags that `kept` was built for


cdef void pipe_init(Pipe* P, const int[:, ::1] mono, Py_ssize_t n_features,
                    Py_ssize_t ncols_tol) noexcept
cdef int pipe_alloc(Pipe* P, Buffers buffers, Py_ssize_t max_rows) except -1
cdef int pipe_alloc_predict(Pipe* P, Buffers buffers) except -1
cdef void scaler(const double* X, Py_ssize_t p, const Py_ssize_t* rows, Py_ssize_t m,
                 double* mean, double* scale, bint* active) noexcept nogil
cdef Py_ssize_t kept_columns(Pipe* P) noexcept nogil
cdef bint centred_design(Pipe* P, const double* X, const Py_ssize_t* rows, const double* wts,
                         Py_ssize_t n_distinct, Py_ssize_t m, const double* mean,
                         const double* scale, Py_ssize_t n_kept) noexcept nogil
cdef void design_row(Pipe* P, const double* x, const double* mean, const double* scale,
                     double* out) noexcept nogil
cdef int pipe_fit(Pipe* P, const double* X, const double* y, const Py_ssize_t* rows,
                  Py_ssize_t m, const Py_ssize_t* distinct_rows, const double* wts,
                  Py_ssize_t n_distinct, double* mean, double* scale, double* coef,
                  double* intercept) noexcept nogil
cdef void pipe_predict(const Pipe* P, const double* mean, const double* scale,
                       const double* coef, double intercept, const double* Xn,
                       Py_ssize_t nrows, double* out) noexcept nogil

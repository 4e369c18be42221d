! SPDX-License-Identifier: Apache-2.0
! pmpi_check_fortran.f90 -- a Fortran caller of MPI_ALLREDUCE (`use mpi`).
! Open MPI's Fortran binding calls PMPI_Allreduce directly, so only the
! wrapper's own Fortran symbols can compress it. Checks: the REAL sum is
! within the codec bound of plain Open MPI (PMPI_ALLREDUCE) and differs from
! it (compressed); MPI_IN_PLACE works; DOUBLE PRECISION passes through
! exactly (inputs hold no NaN); MPI_IALLREDUCE + MPI_WAIT (MPI_THREAD_MULTIPLE:
! the wrapper's progress thread) gives a compressed sum within the same
! bound. Exit status 0 = pass.
program pmpi_check_fortran
    use mpi
    implicit none
    integer, parameter :: n = 100003
    real, allocatable :: x(:), y(:), z(:)
    double precision, allocatable :: dx(:), dy(:), dz(:)
    integer :: ierr, rank, nranks, i, r, ndiff, bad, worst, provided, req
    real :: amp, bound, err

    call MPI_INIT_THREAD(MPI_THREAD_MULTIPLE, provided, ierr)
    call MPI_COMM_RANK(MPI_COMM_WORLD, rank, ierr)
    call MPI_COMM_SIZE(MPI_COMM_WORLD, nranks, ierr)
    allocate(x(n), y(n), z(n), dx(n), dy(n), dz(n))
    do i = 1, n
        x(i) = (1.0 + rank) * sin(0.37 * real(i) + real(rank))
        dx(i) = dble(x(i)) * 1.0d-3
    end do
    amp = 0.0
    do r = 0, nranks - 1
        amp = amp + (1.0 + r)
    end do
    ! one quantization step per stage, doubled by error feedback
    bound = 2.05 * 2.0 * amp / 127.0 + 1.0e-5 * amp
    bad = 0

    call MPI_ALLREDUCE(x, y, n, MPI_REAL, MPI_SUM, MPI_COMM_WORLD, ierr)
    call PMPI_ALLREDUCE(x, z, n, MPI_REAL, MPI_SUM, MPI_COMM_WORLD, ierr)
    err = maxval(abs(y - z))
    ndiff = count(abs(y - z) > 0.0)
    if (err > bound) then
        print *, 'FAIL: REAL sum error', err, 'exceeds', bound
        bad = 1
    end if
    if (ndiff == 0) then
        print *, 'FAIL: REAL sum equals plain MPI bit for bit: not compressed'
        bad = 1
    end if

    y = x
    call MPI_ALLREDUCE(MPI_IN_PLACE, y, n, MPI_REAL, MPI_SUM, MPI_COMM_WORLD, ierr)
    err = maxval(abs(y - z))
    ndiff = count(abs(y - z) > 0.0)
    if (err > bound .or. ndiff == 0) then
        print *, 'FAIL: MPI_IN_PLACE REAL sum error', err, 'bound', bound
        bad = 1
    end if

    call MPI_ALLREDUCE(dx, dy, n, MPI_DOUBLE_PRECISION, MPI_SUM, MPI_COMM_WORLD, ierr)
    call PMPI_ALLREDUCE(dx, dz, n, MPI_DOUBLE_PRECISION, MPI_SUM, MPI_COMM_WORLD, ierr)
    if (count(abs(dy - dz) > 0.0d0) > 0) then
        print *, 'FAIL: DOUBLE PRECISION sum differs from plain MPI'
        bad = 1
    end if

    if (provided == MPI_THREAD_MULTIPLE) then
        y = 0.0
        call MPI_IALLREDUCE(x, y, n, MPI_REAL, MPI_SUM, MPI_COMM_WORLD, req, ierr)
        call MPI_WAIT(req, MPI_STATUS_IGNORE, ierr)
        err = maxval(abs(y - z))
        ndiff = count(abs(y - z) > 0.0)
        if (err > bound .or. ndiff == 0) then
            print *, 'FAIL: MPI_IALLREDUCE REAL sum error', err, 'bound', bound, 'differing', ndiff
            bad = 1
        end if
    else
        print *, 'FAIL: MPI_THREAD_MULTIPLE not provided'
        bad = 1
    end if

    call PMPI_ALLREDUCE(bad, worst, 1, MPI_INTEGER, MPI_MAX, MPI_COMM_WORLD, ierr)
    if (rank == 0 .and. worst == 0) then
        print *, 'pmpi_check_fortran: pass, REAL max error', err, 'bound', bound
    end if
    deallocate(x, y, z, dx, dy, dz)
    call MPI_FINALIZE(ierr)
    if (worst /= 0) then
        stop 1
    end if
end program pmpi_check_fortran
